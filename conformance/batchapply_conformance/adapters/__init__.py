"""Thin factories that behave like BatchApply implementations in the wild, for docs/ecosystem.md.

Each module is the kit's own code, written from the behaviour of one implementation
(read from its source, not copied), so that the kit can show how it conforms without
installing it (dm-haiku, Sonnet and TF-Agents pull in their own frameworks):
``batchapply-conformance batchapply_conformance.adapters.haiku:BatchApply``.
"""
