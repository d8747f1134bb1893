"""What the network looks at: gradient maps, activation attention maps, picture grids.

- `gradient_maps.py`: tf-keras-vis Grad-CAM, Grad-CAM++ and Saliency for each attribute
  logit and for the embedding's similarity to a reference face;
- `attention_maps.py`: the paper's activation attention maps (sum over channels of squared
  activations, normalised to [0, 1]) of the first and last conv blocks;
- `views.py`: single-output views of a model's graph with inner feature maps exposed;
- `grids.py`: heat-map overlays on faces and labelled PNG grids;
- `inspection.py`: the gradient and attention grids of `catface inspect`, per face;
- `degradation_grid.py`: each LQ degradation family at increasing strength (`catface degrade`).

`catface inspect` (catface_keras/cli/inspect.py) draws the maps for a few faces.
"""
