"""The aggregator's store on disk."""
