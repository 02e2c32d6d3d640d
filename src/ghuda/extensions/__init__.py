"""GH / GH++ beyond domain adaptation (issue 16): retrieval with text feedback, detection.

`meta` is what is known without torch (task names, run-config check, defaults of the loop),
`base` is the task contract, `loop` trains one run, `grid` expands a pipeline config's
``extensions`` entries, `report` writes their tables and figures, `cli` is
``ghuda extension``. Task packages: `retrieval` (TIRG on css_mini / CSS3D), `detection`
(SSD on det_mini / PASCAL VOC), each with a torch-free namespace (its `defaults`) and its
model and builder in `<task>.task`.
"""
