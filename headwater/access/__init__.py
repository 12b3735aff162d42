"""Who may do what in the destination: the loader, transformer and reader roles of `grants:`, what each is
given (`headwater db grants`), the role each step of a run connects as, and the reader's columns of the marts.

Imports: common, project, postgres, marts, lineage, ops.
"""
