"""Reading torch modules into networks (torch.fx) and building torch modules from networks.

torch is imported only when these functions run.
"""

from .bridge import ImportedModule, from_module, to_module

__all__ = ["ImportedModule", "from_module", "to_module"]
