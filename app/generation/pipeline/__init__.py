"""The reply pipeline: a reply is composed by a list of small stages (stage.py, stages/), run in
order by the composer (composer.py). See docs/architecture.md for the way a message goes."""
