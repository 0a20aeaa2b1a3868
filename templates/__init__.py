"""The default theme: the pages citizens see. Copy this folder to customise it."""
