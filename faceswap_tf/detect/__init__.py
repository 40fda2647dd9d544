"""The detect stage: labelled fakes from the pipeline, a detector trained on them, exported
and applied (`dataset`, `__main__`, `score`)."""
