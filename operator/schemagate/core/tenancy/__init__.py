"""What one tenant may do and see: bounds on its input, allowed hosts, author rights, scrubbing."""
