"""What a plugin author reads: the hooks, the four interfaces, the value types, option checking.

numpy only: importing the contract never imports torch. Plugin code imports these names from the
top-level ``synthaug`` package.
"""
