"""Using trained weights: what inference segments and the checks every scan passes before a label map is written
(``deploy.inference``), and what the weights need to run as trained, ``model_settings.json`` (``deploy.weights``).
Below ``training`` (training writes the settings; inference and evaluation read them); imports only the library."""
