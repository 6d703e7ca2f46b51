"""The creative vocabulary every package speaks: templates, aspects, colours, a variant's factors, the brief
and the decisions made about variants. Neutral ground: rendering, connectors and experiments import it,
it imports none of them (the brief's product check, which reads the model file, asks rendering's)."""
