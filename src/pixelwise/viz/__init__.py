"""Pictures of runs and models, as PNG, GIF and one HTML page (matplotlib, Pillow).

``plots`` (curves, confusion matrices), ``segmentation`` (class colours, image | truth |
prediction, overlays), ``learning`` (the per-epoch GIF), ``features`` (feature maps,
t-SNE, Grad-CAM), ``samples`` (most confident mistakes), ``report`` (``report.html``).
"""
