"""Slater–Koster s/p blocks, their analytic gradients, and the smooth radial functions of the engine.

Orbital order of a C atom: s, px, py, pz (OpenMX). For a bond vector d = r_j − r_i (Å) with
direction cosines u = d/|d| the block B[a, b] = <i a | H | j b> is (Slater & Koster, Phys. Rev. 94,
1498 (1954), Table I):

    B[s, s]   = V_ssσ
    B[s, pα]  = u_α V_spσ,     B[pα, s] = −u_α V_spσ
    B[pα, pβ] = u_α u_β V_ppσ + (δ_αβ − u_α u_β) V_ppπ

All radial functions return (value, d value / d r) so that forces are analytic.
"""

from __future__ import annotations

import numpy as np


def _tail_coefficients(v0: float, v1: float, v2: float, h: float) -> np.ndarray:
    """Coefficients c_0…c_5 of p(x) = Σ c_k x^k with p, p', p'' = v0, v1, v2 at x = 0 and 0 at x = h."""
    c = np.zeros(6)
    c[:3] = v0, v1, 0.5 * v2
    a = np.array([[h**3, h**4, h**5], [3 * h**2, 4 * h**3, 5 * h**4], [6 * h, 12 * h**2, 20 * h**3]])
    rhs = -np.array([c[0] + c[1] * h + c[2] * h**2, c[1] + 2 * c[2] * h, 2 * c[2]])
    c[3:] = np.linalg.solve(a, rhs)
    return c


def _xwch_form(r: np.ndarray, n: float, nc: float, rc: float, r0: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r0/r)^n exp{n[−(r/rc)^nc + (r0/rc)^nc]} and its first and second r-derivatives."""
    r = np.asarray(r, dtype=float)
    x = (r / rc) ** nc
    val = (r0 / r) ** n * np.exp(n * (-x + (r0 / rc) ** nc))
    g = -n / r - n * nc * x / r  # d ln(val) / dr
    dg = n / r**2 - n * nc * (nc - 1.0) * x / r**2
    return val, val * g, val * (g * g + dg)


def xwch_radial(r: np.ndarray, n: float, nc: float, rc: float, r0: float, r1: float, rm: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """XWCH scaling function (dimensionless) and its derivative (Å⁻¹), with a C² quintic tail.

    For r < r1 the analytic XWCH form; on [r1, rm] a quintic polynomial matching value, slope and
    curvature at r1 and vanishing with zero slope and curvature at rm; zero beyond rm.
    """
    r = np.asarray(r, dtype=float)
    val = np.zeros_like(r)
    der = np.zeros_like(r)
    inner = r < r1
    if inner.any():
        v, d, _ = _xwch_form(r[inner], n, nc, rc, r0)
        val[inner], der[inner] = v, d
    tail = (r >= r1) & (r < rm)
    if tail.any():
        v0, v1, v2 = (float(q) for q in _xwch_form(np.array(r1), n, nc, rc, r0))
        c = _tail_coefficients(v0, v1, v2, rm - r1)
        x = r[tail] - r1
        val[tail] = np.polynomial.polynomial.polyval(x, c)
        der[tail] = np.polynomial.polynomial.polyval(x, c[1:] * np.arange(1, 6))
    return val, der


def smooth_switch(r: np.ndarray, r_on: float, r_off: float) -> tuple[np.ndarray, np.ndarray]:
    """C² switching function: 1 for r ≤ r_on, 0 for r ≥ r_off, 1 − 10t³ + 15t⁴ − 6t⁵ between.

    Returns (value, derivative in Å⁻¹) with t = (r − r_on)/(r_off − r_on).
    """
    r = np.asarray(r, dtype=float)
    w = r_off - r_on
    t = np.clip((r - r_on) / w, 0.0, 1.0)
    val = 1.0 - t**3 * (10.0 - 15.0 * t + 6.0 * t * t)
    der = -30.0 * t * t * (1.0 - t) ** 2 / w
    return val, der


def sp_blocks(vectors: np.ndarray, v_ss: np.ndarray, v_sp: np.ndarray, v_pps: np.ndarray,
              v_ppp: np.ndarray, dv_ss: np.ndarray, dv_sp: np.ndarray, dv_pps: np.ndarray,
              dv_ppp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slater–Koster 4×4 s/p blocks and their gradients with respect to the bond vector.

    ``vectors`` (E, 3) in Å; the V's are (E,) bond integrals (eV) at |d| and ``dv_*`` their
    r-derivatives (eV/Å). Returns ``blocks`` (E, 4, 4) in eV and ``grads`` (E, 4, 4, 3) with
    grads[e, a, b, γ] = ∂B_e[a, b]/∂d_γ in eV/Å.
    """
    d = np.asarray(vectors, dtype=float)
    ne = len(d)
    r = np.linalg.norm(d, axis=1)
    u = d / r[:, None]
    eye = np.eye(3)
    # ∂u_α/∂d_γ = (δ_αγ − u_α u_γ)/r
    du = (eye[None] - u[:, :, None] * u[:, None, :]) / r[:, None, None]
    blocks = np.zeros((ne, 4, 4))
    grads = np.zeros((ne, 4, 4, 3))
    blocks[:, 0, 0] = v_ss
    grads[:, 0, 0, :] = dv_ss[:, None] * u
    blocks[:, 0, 1:] = u * v_sp[:, None]
    g_sp = du * v_sp[:, None, None] + u[:, :, None] * (dv_sp[:, None] * u)[:, None, :]
    grads[:, 0, 1:, :] = g_sp
    blocks[:, 1:, 0] = -blocks[:, 0, 1:]
    grads[:, 1:, 0, :] = -g_sp
    uu = u[:, :, None] * u[:, None, :]
    delta = v_pps - v_ppp
    blocks[:, 1:, 1:] = uu * delta[:, None, None] + eye[None] * v_ppp[:, None, None]
    # ∂(u_α u_β)/∂d_γ = du[α, γ] u_β + u_α du[β, γ]
    duu = du[:, :, None, :] * u[:, None, :, None] + u[:, :, None, None] * du[:, None, :, :]
    grads[:, 1:, 1:, :] = (duu * delta[:, None, None, None]
                           + uu[..., None] * ((dv_pps - dv_ppp)[:, None] * u)[:, None, None, :]
                           + eye[None, :, :, None] * (dv_ppp[:, None] * u)[:, None, None, :])
    return blocks, grads
