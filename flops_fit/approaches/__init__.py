"""The three approaches of Hoffmann et al. 2022 (Sec. 3) behind one interface (:mod:`.compare`):
Approach 1, the envelope of training curves (:mod:`.envelope`); 2, IsoFLOP parabolas (:mod:`.isoflop`,
with the power laws across budgets in :mod:`.laws`); 3, the parametric loss law (:mod:`.parametric`);
and what the data cannot support (:mod:`.diagnostics`). The default estimator fits each budget's
curve in the law's shape (:mod:`.isoflop_shape`, exponents from :mod:`.vpnls`); :mod:`.estimator`
chooses between it and the parabolas."""
