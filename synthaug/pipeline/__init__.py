"""The pipeline, one module per arrow, each importing only what lies upstream of it:
load -> split -> balance -> checkpoint -> store -> metrics -> report -> runs -> train -> evaluate
(and project, a volume file to an image file). See docs/architecture.md."""
