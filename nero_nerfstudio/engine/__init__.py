"""Training-loop pieces of the plugin: learning-rate schedules, the reliable trainer, checkpoint files."""
