"""LightningDataModules: the glue between the data layer and a stage."""
