"""GH / GH++ beyond domain adaptation (issue 16): retrieval with text feedback, detection.

`base` is the task contract, `loop` trains one run, `grid` expands a pipeline config's
``extensions`` entries, `report` writes their tables and figures, `cli` is
``ghuda extension``. Task packages: `retrieval` (TIRG on css_mini / CSS3D), `detection`
(SSD on det_mini / PASCAL VOC).
"""
