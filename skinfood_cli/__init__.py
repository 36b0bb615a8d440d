"""skinfood: train, evaluate and run a skin-condition photo classifier locally.

Not a medical device: its answers are a hint to discuss with a doctor, never a
diagnosis.
"""

__version__ = "0.1.0"
