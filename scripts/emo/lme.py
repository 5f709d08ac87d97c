"""Linear mixed models for the spatial validation: ``y ~ x + (1 | slide)``.

EMO fitted, per probe, the ST expression with the EMO-spatial prediction as fixed
effect and the slide as random intercept by maximum likelihood (lme4, REML = FALSE)
and tested the fixed effect with a likelihood-ratio test against ``y ~ 1 + (1 | slide)``.

* :func:`fit_lme4` runs exactly that in R's lme4 through rpy2 (the pipeline default).
* :func:`fit_profile` fits the same ML models by maximising the profiled likelihood over
  the one variance ratio (exact, robust at the boundary): the ``python`` backend, no R.
* :func:`fit_statsmodels` fits them with statsmodels ``MixedLM``: the independent
  cross-check used by the tests (MixedLM's optimisers can stop short on small designs,
  so it is not offered as a backend).
* :func:`benjamini_hochberg` adjusts p-values (NaN-aware, as R's ``p.adjust(method = "BH")``).

The coefficient's 95 % CI is the Wald interval ``estimate ± z_0.975 · SE`` from the
ML fit (lme4's ``confint(method = "Wald")``), not the profile interval.
"""

from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

from .errors import ConfigError

Z_975 = float(stats.norm.ppf(0.975))

INSTALL_HINT = (
    "install R with lme4 and rpy2: on Debian/Ubuntu 'apt-get install r-base-core r-base-dev r-cran-lme4 "
    "r-cran-lmertest' then 'pip install rpy2==3.5.17' (rpy2 >= 3.6 does not load against R 4.2); or run "
    "Snakemake with --software-deployment-method conda (envs/r_lme4.yaml); or set 'spatial.backend: "
    "python' to fit the same ML models without R"
)


@dataclass
class LmmResult:
    coefficient: float = math.nan
    se: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    lrt_chi2: float = math.nan
    p: float = math.nan
    loglik_full: float = math.nan
    loglik_null: float = math.nan
    status: str = "ok"          # ok | singular | not_fitted
    message: str = ""


def _precheck(y, x, groups) -> str:
    """Reason the model cannot be fitted, or ''."""
    y, x = np.asarray(y, float), np.asarray(x, float)
    if len(y) != len(x) or len(y) != len(groups):
        raise ValueError("y, x and groups must have the same length")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(x))):
        return "non-finite values"
    n_groups = len(set(groups))
    if n_groups < 2:
        return "fewer than 2 slides"
    if len(y) <= n_groups:
        return "no slide has more than one ROI (random intercept not identifiable)"
    if np.ptp(x) == 0:
        return "prediction is constant across ROIs"
    return ""


# ---------------------------------------------------------------------------
# lme4 through rpy2
# ---------------------------------------------------------------------------

_R_FIT = r"""
function(y, x, g) {
  d <- data.frame(y = y, x = x, g = factor(g))
  msgs <- character(0)
  keep <- function(w) {
    msgs <<- c(msgs, conditionMessage(w))
    invokeRestart(if (inherits(w, "warning")) "muffleWarning" else "muffleMessage")
  }
  fit <- withCallingHandlers(tryCatch({
    full <- lme4::lmer(y ~ x + (1 | g), data = d, REML = FALSE)
    null <- lme4::lmer(y ~ 1 + (1 | g), data = d, REML = FALSE)
    a <- anova(null, full)
    list(full = full, null = null, a = a)
  }, error = function(e) e), warning = keep, message = keep)
  if (inherits(fit, "error")) {
    return(list(ok = FALSE, message = conditionMessage(fit)))
  }
  cf <- summary(fit$full)$coefficients
  list(ok = TRUE, estimate = cf["x", "Estimate"], se = cf["x", "Std. Error"],
       chisq = fit$a$Chisq[2], p = fit$a[["Pr(>Chisq)"]][2],
       loglik_full = as.numeric(logLik(fit$full)), loglik_null = as.numeric(logLik(fit$null)),
       singular = lme4::isSingular(fit$full),
       message = paste(unique(gsub("\n", " ", msgs)), collapse = "; "))
}
"""

_r_fit = None


def require_lme4():
    """Load rpy2 + lme4 once; raise ConfigError with install instructions if missing."""
    global _r_fit
    if _r_fit is not None:
        return _r_fit
    if shutil.which("R") is None and shutil.which("Rscript") is None:
        raise ConfigError(f"config key 'spatial.backend' is 'lme4' but R is not installed (no 'R' on PATH); "
                          f"{INSTALL_HINT}")
    try:
        import rpy2.robjects as ro
        from rpy2.rinterface_lib.embedded import RRuntimeError
    except Exception as error:  # ImportError, or rpy2 failing to load libR
        raise ConfigError(f"config key 'spatial.backend' is 'lme4' but rpy2 cannot be loaded ({error}); "
                          f"{INSTALL_HINT}") from None
    _require_r_packages(("lme4",), ro, RRuntimeError)
    _r_fit = ro.r(_R_FIT)
    return _r_fit


def _require_r_packages(packages, ro, error_type) -> None:
    for package in packages:
        try:
            ro.r(f'suppressPackageStartupMessages(library("{package}"))')
        except error_type as error:
            raise ConfigError(f"config key 'spatial.backend' is 'lme4' but the R package {package} is missing "
                              f"({' '.join(str(error).split())}); {INSTALL_HINT}") from None


def fit_lme4(y, x, groups) -> LmmResult:
    """ML fit of ``y ~ x + (1|g)`` and LRT against ``y ~ 1 + (1|g)`` in lme4."""
    reason = _precheck(y, x, groups)
    if reason:
        return LmmResult(status="not_fitted", message=reason)
    import rpy2.robjects as ro

    r_fit = require_lme4()
    out = r_fit(ro.FloatVector(np.asarray(y, float)), ro.FloatVector(np.asarray(x, float)),
                ro.StrVector([str(g) for g in groups]))
    get = {name: out.rx2(name) for name in out.names}
    message = str(get["message"][0]) if "message" in get else ""
    if not bool(get["ok"][0]):
        return LmmResult(status="not_fitted", message=f"lme4 error: {message}")
    estimate, se = float(get["estimate"][0]), float(get["se"][0])
    return LmmResult(coefficient=estimate, se=se, ci_low=estimate - Z_975 * se, ci_high=estimate + Z_975 * se,
                     lrt_chi2=float(get["chisq"][0]), p=float(get["p"][0]),
                     loglik_full=float(get["loglik_full"][0]), loglik_null=float(get["loglik_null"][0]),
                     status="singular" if bool(get["singular"][0]) else "ok", message=message)


# ---------------------------------------------------------------------------
# statsmodels cross-check
# ---------------------------------------------------------------------------

def _mixedlm_ml(y, exog, groups):
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM(np.asarray(y, float), exog, groups=np.asarray(groups))
    best, best_messages, errors = None, [], []
    # several optimisers, keep the best likelihood (MixedLM can stop early on flat surfaces)
    for method in ("lbfgs", "powell"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = model.fit(reml=False, method=method)
            except Exception as error:  # noqa: BLE001 - try the next optimiser
                errors.append(f"{method}: {error}")
                continue
        if best is None or result.llf > best.llf + 1e-10:
            best, best_messages = result, [str(w.message) for w in caught]
    return best, (best_messages if best is not None else errors)


def _conditional_se(scale, tau2, exog, groups, index):
    """SE of a fixed effect as lme4 reports it: sqrt of diag (X' V^-1 X)^-1 at the ML
    variance components (statsmodels' ``bse_fe`` uses the joint observed Hessian)."""
    groups = np.asarray(groups)
    xtvx = np.zeros((exog.shape[1], exog.shape[1]))
    for g in np.unique(groups):
        xg = exog[groups == g]
        n = len(xg)
        # V_g = scale I + tau2 11';  V_g^-1 = (I - tau2 / (scale + n tau2) 11') / scale
        s = xg.sum(axis=0)
        xtvx += (xg.T @ xg - tau2 / (scale + n * tau2) * np.outer(s, s)) / scale
    return float(np.sqrt(np.linalg.inv(xtvx)[index, index]))


def fit_statsmodels(y, x, groups) -> LmmResult:
    """The same ML models and LRT with statsmodels MixedLM (independent implementation)."""
    reason = _precheck(y, x, groups)
    if reason:
        return LmmResult(status="not_fitted", message=reason)
    x = np.asarray(x, float)
    ones = np.ones((len(x), 1))
    y = np.asarray(y, float)
    exog_full = np.column_stack([ones, x])
    full, m_full = _best_with_boundary(y, exog_full, groups)
    null, m_null = _best_with_boundary(y, ones, groups)
    estimate = float(full["beta"][1])
    se = _conditional_se(full["scale"], full["tau2"], exog_full, groups, 1)
    chi2 = float(max(2.0 * (full["llf"] - null["llf"]), 0.0))
    singular = full["tau2"] <= 1e-8 * max(full["scale"], 1e-300)
    return LmmResult(coefficient=estimate, se=se, ci_low=estimate - Z_975 * se, ci_high=estimate + Z_975 * se,
                     lrt_chi2=chi2, p=float(stats.chi2.sf(chi2, 1)), loglik_full=full["llf"],
                     loglik_null=null["llf"], status="singular" if singular else "ok",
                     message="; ".join(sorted(set(m_full + m_null)))[:500])


def _best_with_boundary(y, exog, groups):
    """MixedLM ML fit, or the boundary solution (slide variance 0 = OLS with the ML
    residual variance) when that has the higher likelihood: MixedLM's optimisers do not
    reach the boundary reliably, lme4 does (a "singular" fit)."""
    n = len(y)
    beta_ols, *_ = np.linalg.lstsq(exog, y, rcond=None)
    scale_ols = float(np.sum((y - exog @ beta_ols) ** 2) / n)
    llf_ols = -0.5 * n * (math.log(2 * math.pi) + math.log(scale_ols) + 1.0)
    best = {"llf": llf_ols, "beta": beta_ols, "scale": scale_ols, "tau2": 0.0}
    result, messages = _mixedlm_ml(y, exog, groups)
    if result is not None and np.isfinite(result.llf) and result.llf > llf_ols:
        best = {"llf": float(result.llf), "beta": np.asarray(result.fe_params, float),
                "scale": float(result.scale), "tau2": float(np.asarray(result.cov_re).ravel()[0])}
        return best, messages
    return best, ["boundary fit (slide variance 0)"]


# ---------------------------------------------------------------------------
# exact ML by profiling (the "python" backend)
# ---------------------------------------------------------------------------

def _profile(y, exog, groups):
    """Profiled ML log-likelihood of ``y ~ exog + (1 | g)`` as a function of
    theta = tau / sigma (beta and sigma² profiled out, as lme4 does)."""
    labels, index = np.unique(np.asarray(groups), return_inverse=True)
    sizes = np.bincount(index).astype(float)
    sum_x = np.zeros((len(labels), exog.shape[1]))
    np.add.at(sum_x, index, exog)
    sum_y = np.bincount(index, weights=y)
    xtx, xty, yty = exog.T @ exog, exog.T @ y, float(y @ y)
    n = len(y)

    def evaluate(theta):
        lam = theta * theta
        w = lam / (1.0 + sizes * lam)                      # V_g^-1 = (I - w 11') / sigma²
        a = xtx - (sum_x * w[:, None]).T @ sum_x
        b = xty - (sum_x * (w * sum_y)[:, None]).sum(axis=0)
        beta = np.linalg.solve(a, b)
        rss = yty - float(np.sum(w * sum_y ** 2)) - 2 * float(beta @ b) + float(beta @ a @ beta)
        rss = max(rss, 1e-300)
        scale = rss / n
        llf = -0.5 * (n * math.log(2 * math.pi) + float(np.sum(np.log1p(sizes * lam))) + n * math.log(scale) + n)
        return llf, beta, scale, lam * scale

    return evaluate


def _profile_fit(y, exog, groups):
    from scipy.optimize import minimize_scalar

    evaluate = _profile(np.asarray(y, float), exog, groups)
    grid = np.concatenate([[0.0], np.logspace(-4, 4, 81)])
    values = [evaluate(t)[0] for t in grid]
    k = int(np.argmax(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best_theta, best_llf = grid[k], values[k]
    if hi > lo:
        opt = minimize_scalar(lambda t: -evaluate(t)[0], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-12 * max(hi, 1.0), "maxiter": 500})
        if -opt.fun >= best_llf:
            best_theta = float(opt.x)
    llf, beta, scale, tau2 = evaluate(best_theta)
    return {"llf": llf, "beta": beta, "scale": scale, "tau2": tau2}


def fit_profile(y, x, groups) -> LmmResult:
    """The same ML models and LRT by direct maximisation of the profiled likelihood over
    the single variance ratio (grid + bounded Brent; the boundary theta = 0 included)."""
    reason = _precheck(y, x, groups)
    if reason:
        return LmmResult(status="not_fitted", message=reason)
    y = np.asarray(y, float)
    ones = np.ones((len(y), 1))
    exog_full = np.column_stack([ones, np.asarray(x, float)])
    full = _profile_fit(y, exog_full, groups)
    null = _profile_fit(y, ones, groups)
    estimate = float(full["beta"][1])
    se = _conditional_se(full["scale"], full["tau2"], exog_full, groups, 1)
    chi2 = float(max(2.0 * (full["llf"] - null["llf"]), 0.0))
    singular = full["tau2"] <= 1e-8 * full["scale"]
    return LmmResult(coefficient=estimate, se=se, ci_low=estimate - Z_975 * se, ci_high=estimate + Z_975 * se,
                     lrt_chi2=chi2, p=float(stats.chi2.sf(chi2, 1)), loglik_full=full["llf"],
                     loglik_null=null["llf"], status="singular" if singular else "ok",
                     message="boundary fit (slide variance 0)" if singular else "")


def fitter(backend: str) -> Callable[..., LmmResult]:
    if backend == "lme4":
        require_lme4()
        return fit_lme4
    if backend == "python":
        return fit_profile
    raise ConfigError(f"config key 'spatial.backend': {backend!r} is not 'lme4' or 'python'")


def benjamini_hochberg(p) -> np.ndarray:
    """BH-adjusted p-values; NaNs stay NaN and are not counted (R ``p.adjust(p, "BH")`` on the non-NaN).
    One implementation serves the whole library: :func:`emo.stats.core.bh_adjust`."""
    from .stats.core import bh_adjust

    return bh_adjust(p)
