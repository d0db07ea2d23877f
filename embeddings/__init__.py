"""Arp's embedding side: demo survey, ingest, encoders and embedding jobs (no Streamlit imports)."""
