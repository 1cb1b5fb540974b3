"""End-to-end flows that chain the rooms above (the demo, LM-weight tuning); sits just under cli."""
