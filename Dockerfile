# Airflow 3.3 image with this provider, and the reference agents it is tried against (stack/), installed
# from the repository (for docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 pyproject.toml README.md LICENSE /opt/airflow-agentvault/
COPY --chown=airflow:0 airflow_agentvault /opt/airflow-agentvault/airflow_agentvault
COPY --chown=airflow:0 stack /opt/airflow-agentvault/stack
RUN pip install --no-cache-dir "/opt/airflow-agentvault" "/opt/airflow-agentvault/stack[general-knowledge]"
