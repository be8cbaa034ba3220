"""Cold-start cross-domain baselines, each written from its paper (docs/baselines.md).

``CMF`` trains one MF over both domains; ``CATN`` and ``OmniMatch`` read review documents. The embedding-and-mapping methods — ``EMCDR``,
``SSCDR``, ``LACDR``, ``PTUPCDR``, ``DiffCDR`` — share the per-domain base MF of a split
(:mod:`.base_mf`, trained once and cached) and learn only their mapping, with
:class:`recbole_music.trainer.mapping_trainer.MappingTrainer`.
"""

from recbole_music.model.baselines.catn import CATN
from recbole_music.model.baselines.cmf import CMF
from recbole_music.model.baselines.diffcdr import DiffCDR
from recbole_music.model.baselines.emcdr import EMCDR
from recbole_music.model.baselines.lacdr import LACDR
from recbole_music.model.baselines.omnimatch import OmniMatch
from recbole_music.model.baselines.ptupcdr import PTUPCDR
from recbole_music.model.baselines.sscdr import SSCDR

MAPPING_BASELINES = (EMCDR, SSCDR, LACDR, PTUPCDR, DiffCDR)

__all__ = [
    "CATN",
    "CMF",
    "EMCDR",
    "LACDR",
    "MAPPING_BASELINES",
    "OmniMatch",
    "PTUPCDR",
    "SSCDR",
    "DiffCDR",
]
