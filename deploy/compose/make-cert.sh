#!/bin/sh
# A self-signed certificate for trying deploy/compose.yaml on one machine (browsers will warn).
# In production put your real fullchain.pem and privkey.pem in deploy/compose/certs/ instead.
set -eu
folder="$(dirname "$0")/certs"
name="${1:-localhost}"
mkdir -p "$folder"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name,IP:127.0.0.1" \
    -keyout "$folder/privkey.pem" -out "$folder/fullchain.pem"
# NGINX's master process reads the key as root inside the container; keep it private on the host.
chmod 600 "$folder/privkey.pem"
echo "wrote $folder/fullchain.pem and $folder/privkey.pem for $name"
