"""Research pipelines: composable agent stages, result passing by reference, declarative specs."""
