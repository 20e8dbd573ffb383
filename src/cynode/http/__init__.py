"""HTTP glue shared by every role's app: problem details, body limits, health, serving.

Domain packages own their route handlers; this package only turns them into a served app.
"""
