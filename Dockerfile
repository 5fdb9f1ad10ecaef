# Python 3.12: the gateway's and, for Dify plugins (the dify_plugin SDK needs >= 3.12), the one their
# venvs are made from. Packages and venvs live on the data volume (/data/plugins), so they survive a restart.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_STORE=sqlite:////data/gateway.db \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_PLUGIN_PYTHON=/usr/local/bin/python3.12 \
    GATEWAY_PLUGIN_DIR=/data/plugins

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY endpoints ./endpoints
COPY bots ./bots
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home /data gateway \
 && mkdir -p /data && chown gateway /data

USER gateway
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["dify-gateway", "serve"]
