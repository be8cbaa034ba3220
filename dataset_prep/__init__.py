"""Turn raw review dumps into RecBole atomic files for cold-start cross-domain recommendation.

Run ``python -m dataset_prep --help`` for the subcommands (build, demo, download).
"""
