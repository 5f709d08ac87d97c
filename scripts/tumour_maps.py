"""Snakemake entry: tumour-probability maps over the slide thumbnails (emo.tumour_regions.maps)."""
import emo.smk
from emo import io
from emo.stores.tumour_regions import read_tumour_tiles
from emo.tumour_regions import maps

with emo.smk.rule_logging(snakemake.log[0]) as log:  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    table = io.read_table(inp.slides_table)
    chosen = maps.figure_slides(table, int(p.figure_slides))
    paths = dict(zip(p.samples, inp.slides))
    tiles = read_tumour_tiles(inp.tiles, chosen).slides
    mpps = {s: tiles[s].tile_um / tiles[s].patch_size_level0 for s in chosen}  # µm per level-0 px
    maps.write_maps(tiles, {s: paths[s] for s in chosen}, mpps, table, list(p.annotated), out.figure)
    log.info("tumour maps of %d slides -> %s", len(chosen), out.figure)
