"""Models in the loop: the one client of the models that write data (question rewriter, answerability
judge, video captioner, edit-prompt writer), its backends (any OpenAI-compatible server; a local
checkpoint in-process), its answer cache and run summary, and the GCoT stages that use it. What a
model writes is checked and re-verified before it is used; on failure the template stays."""
