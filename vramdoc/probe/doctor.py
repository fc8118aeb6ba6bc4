"""placeholder"""
def diagnose(result, setup, spec, gpu):
    return []
