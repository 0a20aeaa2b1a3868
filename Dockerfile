# One image for both services: `queue-gate` (default) and `booking-backend` (compose.yaml
# sets the command). Build: docker build -t vaccine-queue .
# Dependencies at the exact versions CI tested (constraints/production.txt, see bin/lock).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY constraints ./constraints
COPY queue_gate ./queue_gate
COPY booking_backend ./booking_backend
COPY vaccine_queue ./vaccine_queue
COPY templates ./templates
RUN pip install --no-cache-dir --disable-pip-version-check --prefix=/install -c constraints/production.txt .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER 10001:10001
# Gate: public 8080, admin 8081. Backend: public 8082, admin 9082.
EXPOSE 8080 8081 8082 9082
CMD ["queue-gate", "--host", "0.0.0.0", "--port", "8080"]
