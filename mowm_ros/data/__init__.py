"""Episodes on disk (compressed npz without pickle + JSON sidecar), generation and datasets."""
