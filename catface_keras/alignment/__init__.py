"""Raw photos to aligned 112x112 faces: detection, five landmarks, a similarity warp.

- `similarity`: the ArcFace five-point template and the least-squares similarity
  transform that maps detected landmarks onto it (NumPy, no detector needed);
- `detection`: the MTCNN face detector (the `mtcnn` package, imported on first use);
- `photos`: reading a photo and cutting out its aligned face(s);
- `folder`: `catface align`, a folder of photos per person -> a training-ready folder;
- `embedding`: embeddings and the AdaFace feature norm of aligned faces.
"""
