"""Teacher, student, base pre-training and distillation (SPEC §7); backbones through timm."""
