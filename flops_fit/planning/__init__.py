"""Planning an IsoFLOP sweep: the size knob (:mod:`.sizes`) and :func:`~flops_fit.planning.planner.plan_sweep`."""
