"""Code generated from proto/ by scripts/gen_protos.py (grpcio-tools 1.81.1). Do not edit."""
