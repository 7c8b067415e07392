"""What a theory check returns: the claim, the paper's words, and what we measured."""

import dataclasses
import json

from dlnref._io import json_default


@dataclasses.dataclass
class Finding:
    """One measurement of a claim on one problem.

    Attributes
    ----------
    problem : str
        The setup it was measured on, say ``"factorization"`` or ``"completion, L=2"``.
    measured : dict of str -> number
        The numbers, named.
    tolerance : str
        The rule that ``holds`` applies, in words and numbers.
    holds : bool
    exact : bool
        True where the theory makes the claim exact (deep matrix
        factorization); a failure there makes ``dlnref check`` exit non-zero.
    """

    problem: str
    measured: dict
    tolerance: str
    holds: bool
    exact: bool

    def __post_init__(self):
        # Comparisons of NumPy numbers give numpy.bool_, which JSON cannot write as true/false.
        self.holds, self.exact = bool(self.holds), bool(self.exact)
        self.measured = json.loads(json.dumps(self.measured, default=json_default))   # Python numbers, lists


@dataclasses.dataclass
class Verdict:
    """The outcome of one claim's check.

    Attributes
    ----------
    name : str
        The claim's short name (its module).
    claim : str
        The claim in one sentence.
    paper : str
        What the paper states.
    findings : list of Finding
    """

    name: str
    claim: str
    paper: str
    findings: list

    @property
    def holds(self):
        """True when every finding holds."""
        return all(f.holds for f in self.findings)

    @property
    def exact_failures(self):
        """Findings that fail where the theory is exact."""
        return [f for f in self.findings if f.exact and not f.holds]

    def to_dict(self):
        return {**dataclasses.asdict(self), "holds": self.holds}
