"""Training-loop pieces of the plugin (learning-rate schedules)."""
