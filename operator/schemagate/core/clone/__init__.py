"""A pod cloned from a backend Deployment's pod template, and its owners' consent to it."""
