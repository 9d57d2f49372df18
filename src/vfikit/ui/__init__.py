"""``vfikit ui``: a local web page over the library (see docs/ui.md).

* :mod:`vfikit.ui.core`: model choices, upload checks, timing choices and the preview; no web code.
* :mod:`vfikit.ui.jobs`: the server-side job queue (one job at a time, in a child process that calls
  :func:`vfikit.interpolate_video`, with progress, ETA and cancel).
* :mod:`vfikit.ui.app`: the Gradio page, a thin layer over the two modules above.

Only :mod:`vfikit.ui.app` imports Gradio (the ``ui`` extra: ``pip install "vfikit[ui]"``).
"""

DEFAULT_MAX_UPLOAD_MB = 500  # the largest upload the page accepts unless ``--max-upload-mb`` says otherwise
