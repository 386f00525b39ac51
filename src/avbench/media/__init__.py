"""Media handling: download (yt-dlp) and slicing (ffmpeg)."""
