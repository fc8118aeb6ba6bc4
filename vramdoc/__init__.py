"""vramdoc: GPU-memory planner and training doctor for Hugging Face fine-tuning."""

__version__ = "0.1.0"
