"""The embedded demo surveys: SDSS-10k (real catalogue, synthetic pixels and spectra) and the Hubble Deep Field.

`embeddings.demo.build.build_demo` and `embeddings.demo.hdf.build_hdf_atlas` are the entry points.
"""
