"""Real-format ingest: AstroCLIP / Multimodal Universe HDF5, FITS and PNG cutouts, SDSS/DESI spectra, catalogues."""

from .report import IngestReport, SourceError
from .run import detect_kind, run_ingest
from .safety import UploadError, sanitize_filename, validate_upload

__all__ = [
    "IngestReport",
    "SourceError",
    "UploadError",
    "detect_kind",
    "run_ingest",
    "sanitize_filename",
    "validate_upload",
]
