"""A physical scale bar for every slide image (thumbnails, overlays, maps)."""

from __future__ import annotations

NICE_LENGTHS_UM = (10, 20, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000)


def nice_length_um(image_width_um: float, fraction: float = 0.2) -> float:
    """The round length closest to (at most) ``fraction`` of the image width."""
    target = image_width_um * fraction
    fitting = [n for n in NICE_LENGTHS_UM if n <= target]
    return float(fitting[-1] if fitting else NICE_LENGTHS_UM[0])


def length_label(length_um: float) -> str:
    return f"{length_um / 1000:g} mm" if length_um >= 1000 else f"{length_um:g} µm"


def add_scale_bar(ax, um_per_image_px: float, image_width_px: float, location: str = "lower right"):
    """Draw a scale bar on ``ax`` (an image axis in image pixels). Returns its length in µm."""
    from matplotlib import patheffects
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = nice_length_um(um_per_image_px * image_width_px)
    bar = AnchoredSizeBar(ax.transData, length / um_per_image_px, length_label(length), location, pad=0.4,
                          color="black", frameon=True, size_vertical=max(1.0, image_width_px / 200),
                          label_top=True)
    bar.patch.set_alpha(0.7)
    bar.txt_label._text.set_path_effects([patheffects.withStroke(linewidth=2, foreground="white")])
    ax.add_artist(bar)
    return length
