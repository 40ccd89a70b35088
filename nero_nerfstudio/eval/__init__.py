"""Evaluation metrics (Chamfer, normal error, PSNR/SSIM/LPIPS, material errors) behind ``nero-eval``."""
