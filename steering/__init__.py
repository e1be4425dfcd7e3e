"""steering: apply directions at inference, evaluate the trade-off, sweep, export.

Public names live in their modules: `steering.steering_vector.SteeringVector`, ...
"""
