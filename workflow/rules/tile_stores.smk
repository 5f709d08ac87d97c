# Stage: tile_stores. Placeholder until the stage lands; defines tile_stores_targets().


def tile_stores_targets():
    return []
