"""Training and evaluation engines (``train``, ``checkpoint``, ``distributed``)."""
