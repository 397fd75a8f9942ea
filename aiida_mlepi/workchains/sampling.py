"""`ThermalSamplingWorkChain`: thermal configurations at one temperature — Monte Carlo (paper Eq. 1–2) or
the special displacement method of Zacharias & Giustino (ZG, :mod:`aiida_mlepi.core.special_displacements`)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain

from aiida_mlepi.calculations.sampling import SAMPLERS, sample_configurations, special_configurations
from aiida_mlepi.data.layered_structure import LayeredStructureData
from aiida_mlepi.data.phonon_modes import PhononModesData

from .resume import resumable_call


class ThermalSamplingWorkChain(WorkChain):
    """Displace the supercell along its modes with ⟨v²⟩ = ħ/(2Mω)·coth(ħω/2k_BT); one node per configuration.

    ``sampler='mc'`` (default) draws ``n_samples`` Gaussian configurations (``antithetic``: in ± pairs).
    ``sampler='zg'`` gives the one ZG configuration (every mode at ±σ_μ, signs optimised for the thermal
    displacement tensors), plus its antipode −u when ``antithetic`` is true (2 configurations);
    ``n_samples`` and ``seed`` are ignored for ZG.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("modes", valid_type=PhononModesData, help="Supercell modes from the phonon stage.")
        spec.input("temperature_k", valid_type=orm.Float, help="Temperature (K), ≥ 0; 0 K gives zero-point motion.")
        spec.input("sampler", valid_type=orm.Str, default=lambda: orm.Str("mc"),
                   help=f"One of {SAMPLERS}: 'mc' Monte Carlo, 'zg' special displacements (Zacharias–Giustino).")
        spec.input("n_samples", valid_type=orm.Int, default=lambda: orm.Int(16),
                   help="Configurations to draw ('mc' only; ignored for 'zg').")
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(20240601), help="Random seed ('mc' only).")
        spec.input("antithetic", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="'mc': draw ± pairs (u, −u), reducing the variance of even observables; "
                        "'zg': include the antipode −u of the special configuration.")
        spec.input("exclude_rigid_layer_modes", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Leave the Γ interlayer shear/breathing modes unsampled (they dominate the MSD of a small "
                        "2D cell; see aiida_mlepi.core.sampling.excluding_rigid_layer_modes).")
        spec.outline(cls.validate_inputs, cls.sample)
        spec.output_namespace("samples", valid_type=LayeredStructureData, dynamic=True,
                              help="sample_0000 … with attributes material, temperature_k, sample_index, sampler "
                                   "and (for 'mc') seed.")
        spec.exit_code(303, "ERROR_NEGATIVE_TEMPERATURE", message="The temperature must be ≥ 0 K, got {value} K.")
        spec.exit_code(304, "ERROR_INVALID_SAMPLE_COUNT", message="{reason}")
        spec.exit_code(305, "ERROR_INVALID_SAMPLER", message="Unknown sampler {value!r}: choose one of {choices}.")
        spec.exit_code(410, "ERROR_IMAGINARY_MODES",
                       message="The modes have {count} imaginary frequencies: cannot sample a thermal distribution.")

    def validate_inputs(self):
        sampler = self.inputs.sampler.value
        if sampler not in SAMPLERS:
            return self.exit_codes.ERROR_INVALID_SAMPLER.format(value=sampler, choices=", ".join(SAMPLERS))
        temperature = self.inputs.temperature_k.value
        if temperature < 0:
            return self.exit_codes.ERROR_NEGATIVE_TEMPERATURE.format(value=temperature)
        if sampler == "mc":
            n = self.inputs.n_samples.value
            if n < 1:
                return self.exit_codes.ERROR_INVALID_SAMPLE_COUNT.format(reason=f"n_samples must be ≥ 1, got {n}")
            if self.inputs.antithetic.value and n % 2:
                return self.exit_codes.ERROR_INVALID_SAMPLE_COUNT.format(
                    reason=f"antithetic sampling needs an even n_samples, got {n}")
        count = self.inputs.modes.base.attributes.get("num_imaginary", 0)
        if count:
            return self.exit_codes.ERROR_IMAGINARY_MODES.format(count=count)
        return None

    def sample(self):
        if self.inputs.sampler.value == "zg":
            samples, _ = resumable_call(self, special_configurations, "special_configurations", self.inputs.modes,
                                        self.inputs.temperature_k, self.inputs.antithetic,
                                        self.inputs.exclude_rigid_layer_modes)
        else:
            samples, _ = resumable_call(self, sample_configurations, "sample_configurations", self.inputs.modes,
                                        self.inputs.temperature_k, self.inputs.n_samples, self.inputs.seed,
                                        self.inputs.antithetic, self.inputs.exclude_rigid_layer_modes)
        self.out("samples", samples)
