"""One training run on exactly its token budget: settings and schedule (:mod:`.config`), data adapters
(:mod:`.data`), the device (:mod:`.device`), the loop (:mod:`.loop`) and the check before any compute
is spent (:mod:`.preflight`)."""
