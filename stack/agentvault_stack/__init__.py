"""What the airflow-agentvault provider is tried against: reference agents, the demo, real-Airflow stacks.

A distribution of its own, so the provider installs without a web server or process tools.
"""
