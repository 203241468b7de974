//! The probit function (inverse standard normal CDF), for DET axes.

/// Inverse of the standard normal CDF: `probit(p)` is the `z` with `Φ(z) = p`.
///
/// Acklam's rational approximation (relative error below 1.2e-9 over (0, 1)),
/// enough for DET plot coordinates. `probit(0) = -inf`, `probit(1) = +inf`, NaN
/// outside [0, 1].
///
/// # Examples
/// ```
/// assert!((face_metrics::probit(0.975) - 1.959963984540054).abs() < 1e-8);
/// assert_eq!(face_metrics::probit(0.5), 0.0);
/// ```
pub fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const P_LOW: f64 = 0.02425;
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::probit;

    #[test]
    fn known_quantiles() {
        // scipy.stats.norm.ppf values.
        let cases = [
            (1e-6, -4.753424308822899),
            (1e-3, -3.090232306167813),
            (0.01, -2.3263478740408408),
            (0.1, -1.2815515655446004),
            (0.3, -0.5244005127080407),
            (0.975, 1.959963984540054),
            (0.999, 3.090232306167813),
        ];
        for (p, z) in cases {
            let got = probit(p);
            assert!(
                (got - z).abs() <= 1.2e-9 * z.abs().max(1.0),
                "probit({p}) = {got}, want {z}"
            );
        }
        assert_eq!(probit(0.0), f64::NEG_INFINITY);
        assert_eq!(probit(1.0), f64::INFINITY);
        assert!(probit(1.5).is_nan() && probit(-0.1).is_nan() && probit(f64::NAN).is_nan());
    }
}
