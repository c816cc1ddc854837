"""napari adapters: the only modules that import napari, magicgui or qtpy."""
